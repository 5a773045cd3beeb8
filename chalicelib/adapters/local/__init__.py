"""The local backend: files, SQLite, in-process events, no ACM and no AWS IoT."""
