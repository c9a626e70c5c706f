"""Where a sweep's searches run beyond this machine's worker processes (slurm), and where a sweep stands (status).
Above search/: these import it, never the reverse."""
