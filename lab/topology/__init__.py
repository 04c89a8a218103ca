"""Lab topologies: what hosts and networks a lab has (model) and making them real in Docker (docker_lab)."""
