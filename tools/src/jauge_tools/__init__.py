"""Developer tools of the workspace, in no service image: generators of docs/."""
