const FRONTEND_VERSION = "frontend v1";
document.getElementById("title").textContent = FRONTEND_VERSION;
