"""`python -m chalicelib.reconcile`: rebuild missing inventory items from the certificate store.

The inventory is fed by events; when events were lost (PutEvents failed after retries, a handler
failed), the store still holds every certificate. This adds the items that are missing, leaves
existing ones alone, and works on whichever backend the environment selects.
"""

from __future__ import annotations

import sys

from chalicelib import wiring


def main() -> int:
    service = wiring.certificate_service()
    added = service.reconcile_inventory()
    print(f"reconcile: {added} inventory item(s) added")
    for fqdn, ca in service.orphaned_certificates():
        print(f"reconcile: certificate {fqdn} was issued by CA {ca}, which was deleted: "
              f"delete it (DELETE /certificates/{fqdn})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
