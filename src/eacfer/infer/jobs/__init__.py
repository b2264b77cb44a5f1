"""Jobs that write files: photo folders (ledger, worker pool, Ray) and videos."""
