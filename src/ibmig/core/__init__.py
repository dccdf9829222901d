"""Sans-I/O protocol engines: agents, subnet manager and administrator, hosts, guests."""
