"""`python -m campaigns.cli`: the same as the `blast` command."""

from campaigns.cli import main

main()
