"""`signals schema`: the field-id ledger, schema releases on deployed tables, drift and suggestions."""
