from cslaunch.cli import run

run()
