"""`python -m chalicelib.reconcile`: rebuild missing inventory items from the certificate store.

The inventory is fed by events; when events were lost (PutEvents failed after retries, a handler
failed), the store still holds every certificate. This adds the items that are missing, leaves
existing ones alone, and works on whichever backend the environment selects.
"""

from __future__ import annotations

import sys

from chalicelib import wiring


def main() -> int:
    added = wiring.certificate_service().reconcile_inventory()
    print(f"reconcile: {added} inventory item(s) added")
    return 0


if __name__ == "__main__":
    sys.exit(main())
