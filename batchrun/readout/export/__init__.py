"""A run as a dataset: one row per prediction, as JSON Lines, CSV or a Hugging Face folder.

    rows = [export_row(line) for line in lines]         # rows.py: flat dicts, one per line
    write_jsonl(rows, handle); write_csv(rows, handle)   # formats.py: to a stream commands/ opened
    write_export(table, rows, handle, columns, "jsonl")  # twocores.py: a table's rows, on two cores
    write_hf(table, rows, run_dir, dest, card)           # hf.py: a folder `datasets` loads as it is

Each row: key, job, every variable as a column of its own (a row value's fields as `row.prompt`),
input, status, output (a language model's text; other outputs as JSON text), files, version,
prediction id, the API it ran on, predict time and token counts, error.

The `hf` folder has one subfolder per job. A job whose predictions made files is an
`imagefolder` (or `audiofolder`): its files, hard-linked from the run folder where the disk
allows (copied where not), and a `metadata.jsonl` naming each in `file_name`; one row per file,
since a dataset row holds one image. A job of text is `data.jsonl`. Only succeeded predictions
with every file as recorded go in. The dataset card `README.md` opens with metadata (one config
per job, so `load_dataset(folder, job)` picks one; the license; the provenance), then says how
many planned predictions are missing and why. `batchrun-export.jsonl` records what
`batchrun verify` checks the folder against (docs/export.md).
"""
