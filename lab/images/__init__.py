"""The lab host image: what goes in it (definition) and how it is built (build)."""
