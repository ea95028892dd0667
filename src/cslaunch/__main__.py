from cslaunch.cli import main

main()
