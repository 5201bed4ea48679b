"""`python -m marketpipe.cli ...`, as the tests and the bench start it."""

from marketpipe.cli.app import main

main()
