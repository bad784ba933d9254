"""import-svc: EDI and BBGR imports, one at a time, files processed in parallel."""
