"""Running the lineage: the grid's partitions, the stage jobs and their order, staleness and the
sensors (operations), runs whose process died and the storage lock (runs), and the log lines the
pipeline silences on purpose (log_filters)."""
