"""`python -m measr.cli`: the `measr` command."""

from measr.cli import main

main()
