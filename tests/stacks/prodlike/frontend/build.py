"""A stand-in for `npm run build`: bundle src/*.js into dist/ with a content-hashed name."""

import hashlib
import sys
from pathlib import Path

src, out = Path(sys.argv[1]), Path(sys.argv[2])
bundle = "\n".join(p.read_text() for p in sorted(src.glob("*.js")))
digest = hashlib.sha256(bundle.encode()).hexdigest()[:10]
out.mkdir(parents=True, exist_ok=True)
(out / f"app.{digest}.js").write_text(bundle)
page = (src / "index.html").read_text().replace("%BUNDLE%", f"app.{digest}.js")
(out / "index.html").write_text(page)
print(f"built app.{digest}.js ({len(bundle)} bytes)")
