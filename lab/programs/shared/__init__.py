"""The pure modules both sides use: the `lab` command on the host and the programs in
the hosts (the router's impair-agent plans with them). Standard library only, and
nothing from outside lab/programs/: the image copies that folder whole."""
