import os

print("hello from", os.environ.get("NAME", "app"))
