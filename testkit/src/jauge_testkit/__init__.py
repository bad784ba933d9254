"""What tests and benchmarks build their data with; a dev-only workspace member, in no
service image (deploy/docker/Dockerfile installs each service's package alone).

- `import_files`: deterministic, realistic EDI and BBGR files, good or with one defect.
"""
