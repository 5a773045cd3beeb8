"""The inventory on AWS: the DynamoDB table with its parent index and its sparse expiry index."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from chalicelib.adapters.aws.errors import aws_error_code, aws_errors
from chalicelib.adapters.inventory_items import (
    GENERATION_FIELDS,
    NUMBER_ATTRIBUTES,
    expiring_page,
    generation_values,
    item_from_attributes,
    item_to_attributes,
    page,
)
from chalicelib.errors import StorageError
from chalicelib.model import (
    NO_FILTER,
    STATUS_ACTIVE,
    STATUS_DELETED,
    ChildFilter,
    ExpiringPage,
    ExpiryCursor,
    InventoryItem,
    InventoryPage,
)

EXPIRING = "Expiring"
"""The key of the sparse expiry index: set (to ACTIVE) on active items only, and removed when
an item is revoked, so the index holds exactly the active items, by NotAfter."""
ACTIVE = {"S": STATUS_ACTIVE}
DELETED = {"S": STATUS_DELETED}
EXPIRES_AT = "ExpiresAt"
"""The table's TTL attribute (epoch seconds): set on a removed item's tombstone only."""
DELETED_ITEM_DAYS = 30
"""How long a removed item's tombstone outlives it: past every retry and redrive of an event
that could otherwise bring the item back."""


def item_to_dynamo(item: InventoryItem) -> dict[str, dict[str, str]]:
    """The item as a DynamoDB `Item` (typed attribute values), in the expiry index if active."""
    attributes = {name: _to_dynamo(name, value) for name, value in item_to_attributes(item).items()}
    if item.status == STATUS_ACTIVE:
        attributes[EXPIRING] = ACTIVE
    return attributes


class DynamoInventory:
    """The DynamoDB inventory table; children are read through the parent index."""

    def __init__(
        self,
        client: Any,
        table: str,
        index: str = "parent-index",
        expiry_index: str = "expiry-index",
    ) -> None:
        self._client = client
        self._table = table
        self._index = index
        self._expiry_index = expiry_index

    def record_certificate(self, item: InventoryItem) -> bool:
        attributes = item_to_dynamo(item)
        try:
            self._client.put_item(
                TableName=self._table,
                Item=attributes,
                ConditionExpression="attribute_not_exists(FQDN)",
            )
        except aws_errors() as err:
            if aws_error_code(err) == "ConditionalCheckFailedException":
                return False
            raise StorageError(f"could not record {item.fqdn} in the inventory: {err}") from err
        return True

    def list_children(
        self,
        parent_fqdn: str,
        limit: int,
        after: str | None,
        child_filter: ChildFilter = NO_FILTER,
    ) -> InventoryPage:
        """Queries the index, fetching limit + 1 matches; filters (tombstones are always left
        out) apply after DynamoDB's Limit, so a listing may query several times to fill a
        page."""
        arguments = self._query_arguments(parent_fqdn, after, child_filter, limit + 1)
        items: list[InventoryItem] = []
        while True:
            response = self._query(arguments, parent_fqdn)
            items += [_from_dynamo(item) for item in response.get("Items", [])]
            last_key = response.get("LastEvaluatedKey")
            if len(items) > limit or last_key is None:
                # A page cut short by DynamoDB's 1 MB limit also has a LastEvaluatedKey.
                return page(items, limit, more=last_key is not None)
            arguments = {**arguments, "ExclusiveStartKey": last_key}

    def _query_arguments(
        self, parent_fqdn: str, after: str | None, child_filter: ChildFilter, limit: int
    ) -> dict[str, Any]:
        condition = "ParentFQDN = :parent" + (" AND FQDN > :after" if after else "")
        values = {":parent": {"S": parent_fqdn}, ":deleted": DELETED}
        if after:
            values[":after"] = {"S": after}
        filters = ["#status <> :deleted"]
        if child_filter.not_after_until is not None:
            filters.append("NotAfter <= :until")
            values[":until"] = {"S": child_filter.not_after_until}
        if child_filter.status is not None:
            filters.append("#status = :status")
            values[":status"] = {"S": child_filter.status}
        arguments: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": self._index,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "Limit": limit,
            "FilterExpression": " AND ".join(filters),
            "ExpressionAttributeNames": {"#status": "Status"},
        }
        return arguments

    def _query(self, arguments: dict[str, Any], parent_fqdn: str) -> dict[str, Any]:
        try:
            return self._client.query(**arguments)
        except aws_errors() as err:
            raise StorageError(f"could not list the children of {parent_fqdn}: {err}") from err

    def list_expiring(
        self, since: str, until: str, limit: int, after: ExpiryCursor | None
    ) -> ExpiringPage:
        """Queries the expiry index for limit + 1 items (again where DynamoDB's 1 MB page cut
        one short); `read` is what DynamoDB read (ScannedCount)."""
        arguments: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": self._expiry_index,
            "KeyConditionExpression": (
                f"{EXPIRING} = :active AND NotAfter BETWEEN :since AND :until"
            ),
            "ExpressionAttributeValues": {
                ":active": ACTIVE, ":since": {"S": since}, ":until": {"S": until},
            },
            "Limit": limit + 1,
        }  # fmt: skip
        if after is not None:
            arguments["ExclusiveStartKey"] = {
                EXPIRING: ACTIVE, "NotAfter": {"S": after.not_after},
                "FQDN": {"S": after.fqdn}, "ParentFQDN": {"S": after.parent_fqdn},
            }  # fmt: skip
        items: list[InventoryItem] = []
        read = 0
        while True:
            try:
                response = self._client.query(**arguments)
            except aws_errors() as err:
                raise StorageError(f"could not list the expiring certificates: {err}") from err
            items += [_from_dynamo(item) for item in response.get("Items", [])]
            read += response.get("ScannedCount", 0)
            last_key = response.get("LastEvaluatedKey")
            if len(items) > limit or last_key is None:
                return expiring_page(items, limit, more=last_key is not None, read=read)
            arguments = {**arguments, "ExclusiveStartKey": last_key,
                         "Limit": limit + 1 - len(items)}  # fmt: skip

    def mark_expiry_notice(self, fqdn: str, parent_fqdn: str, day: str) -> bool:
        return self._update_existing(
            fqdn, parent_fqdn, "SET LastNotice = :value",
            " AND #status = :active AND (attribute_not_exists(LastNotice) OR LastNotice < :value)",
            {"#status": "Status"}, {":value": {"S": day}, ":active": ACTIVE},
            "could not note the expiry notice of",
        )  # fmt: skip

    def update_status(self, fqdn: str, parent_fqdn: str, status: str) -> bool:
        update = "SET #status = :value" + ("" if status == STATUS_ACTIVE else f" REMOVE {EXPIRING}")
        return self._update_existing(
            fqdn, parent_fqdn, update, "", {"#status": "Status"}, status,
            "could not update the inventory item of",
        )  # fmt: skip

    def set_acm_certificate_arn(self, fqdn: str, parent_fqdn: str, arn: str) -> bool:
        return self._update_existing(
            fqdn, parent_fqdn, "SET AcmCertificateArn = :value",
            " AND attribute_not_exists(AcmCertificateArn)", {}, arn,
            "could not set the ACM ARN of",
        )  # fmt: skip

    def record_generation(self, item: InventoryItem) -> bool:
        fields = dict(zip(GENERATION_FIELDS, generation_values(item), strict=True))
        if item.acm_certificate_arn:
            fields["AcmCertificateArn"] = item.acm_certificate_arn
        values = {f":{name}": _to_dynamo(name, value) for name, value in fields.items()}
        return self._update_existing(
            item.fqdn, item.parent_fqdn,
            "SET " + ", ".join(f"{name} = :{name}" for name in fields),
            " AND (attribute_not_exists(Generation) OR Generation < :Generation)", {}, values,
            "could not record the renewal in the inventory of",
        )  # fmt: skip

    def _update_existing(
        self,
        fqdn: str,
        parent_fqdn: str,
        update: str,
        condition: str,
        names: dict[str, str],
        value: str | dict[str, Any],
        failure: str,
    ) -> bool:
        """One conditional update of an existing item; False when the condition fails.
        `value` is `:value`, or all the expression's values by name."""
        values = {":value": {"S": value}} if isinstance(value, str) else value
        arguments: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"FQDN": {"S": fqdn}, "ParentFQDN": {"S": parent_fqdn}},
            "UpdateExpression": update,
            # a tombstone is never updated: a late event leaves it as it is
            "ConditionExpression": "attribute_exists(FQDN) AND #status <> :deleted" + condition,
            "ExpressionAttributeValues": {**values, ":deleted": DELETED},
            "ExpressionAttributeNames": {**names, "#status": "Status"},
        }
        try:
            self._client.update_item(**arguments)
        except aws_errors() as err:
            if aws_error_code(err) == "ConditionalCheckFailedException":
                return False
            raise StorageError(f"{failure} {fqdn}: {err}") from err
        return True

    def remove_item(self, fqdn: str, parent_fqdn: str) -> bool:
        expires = int(time.time()) + DELETED_ITEM_DAYS * 86400
        return self._update_existing(
            fqdn, parent_fqdn, f"SET #status = :value, {EXPIRES_AT} = :expires REMOVE {EXPIRING}",
            "", {}, {":value": DELETED, ":expires": {"N": str(expires)}},
            "could not remove the inventory item of",
        )  # fmt: skip

    def is_removed(self, fqdn: str, parent_fqdn: str) -> bool:
        item = self._get(fqdn, parent_fqdn)
        return item is not None and item.get("Status") == DELETED

    def find(self, fqdn: str, parent_fqdn: str) -> InventoryItem | None:
        item = self._get(fqdn, parent_fqdn)
        if item is None or item.get("Status") == DELETED:
            return None
        return _from_dynamo(item)

    def _get(self, fqdn: str, parent_fqdn: str) -> dict[str, Any] | None:
        try:
            response = self._client.get_item(
                TableName=self._table,
                Key={"FQDN": {"S": fqdn}, "ParentFQDN": {"S": parent_fqdn}},
            )
        except aws_errors() as err:
            raise StorageError(f"could not read the inventory item of {fqdn}: {err}") from err
        item: dict[str, Any] | None = response.get("Item")
        return item

    def contains(self, fqdn: str, parent_fqdn: str) -> bool:
        return self.find(fqdn, parent_fqdn) is not None

    def batch(self) -> AbstractContextManager[object]:
        return nullcontext()


def _to_dynamo(name: str, value: str | int) -> dict[str, str]:
    return {"N": str(value)} if name in NUMBER_ATTRIBUTES else {"S": str(value)}


def _from_dynamo(item: dict[str, dict[str, str]]) -> InventoryItem:
    return item_from_attributes(
        {name: value["N"] if "N" in value else value["S"] for name, value in item.items()}
    )
