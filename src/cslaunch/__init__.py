"""cslaunch: relaunch a Docker Compose stack so it runs exactly the code on disk."""

__version__ = "0.1.0"
