"""One module per subcommand, named for it, each with one function that does the command
once `cslaunch.cli` has parsed its arguments. Each imports what it uses: start-up time."""
