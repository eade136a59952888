"""Provincial side: tools that turn outside sources into station commands."""
