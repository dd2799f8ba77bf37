"""Extraction engines: what runs an encoder over the pending rows of an extraction.

`local` decodes in DataLoader worker processes and encodes in this process; `ray` runs the same
work on Ray Data (decoding tasks, encoder actors) for more than one machine. Both take a
`mmpipe.pipeline.engines.job.Job`, form the same batches (`rows.plan_chunk`, per planning chunk)
and hand every encoded batch to the job's `assemble.Assembler`, the single writer.
"""
