// Stands in for the built Vue app: asks the API for a greeting.
fetch("/casestrainer/api/greet?name=browser")
  .then((r) => r.json())
  .then((body) => { document.getElementById("app").textContent = body.message; });
