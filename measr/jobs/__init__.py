"""File jobs: the work of a command over many files, above the engine and io.

A job turns input files into output files with a `Restorer`: it finds the files, decides
where each result goes, reads, restores and writes them, and keeps what a long run needs
(locks that claim outputs, a log, worker threads). `batch` restores a folder; `inspection`
gathers which experts a set of images used. The engine restores pixels and knows no files."""
