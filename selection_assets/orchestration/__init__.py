"""Running the lineage: the grid's partitions, the names and tags every asset carries (labels: keys,
the gpu pool, the cell a partition key names), the stage jobs and their order, staleness and the
sensors (operations), runs whose process died and the storage lock (runs), and the log lines the
pipeline silences on purpose (log_filters)."""
