"""Adapters of the ports, grouped by backend: `local` and `aws` (imported only by
chalicelib.wiring); `documents` is the document layout both certificate stores share."""
