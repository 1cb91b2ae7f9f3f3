"""The procedure catalog (procedures, legal bases, numbered versions of their processes) and the
working calendar. Import the use cases and queries from here."""
from engine.catalog.calendar import (
    calendar_change_preview,
    invalidate_calendar,
    load_calendar,
    same_day_cutoff,
    set_calendar_day,
    transfer_cutoff,
    working_calendar,
)
from engine.catalog.procedures import (
    basis_warnings,
    create_procedure,
    diff_versions,
    expired_bases,
    export_catalog,
    get_procedure,
    get_version,
    import_catalog,
    known_roles,
    known_units,
    list_procedures,
    load_processes,
    procedures_accepting,
    publish_version,
    retire_version,
    submit_version,
    update_legal_document,
    version_in_force,
)

__all__ = [
    "basis_warnings", "working_calendar", "create_procedure", "diff_versions", "expired_bases", "export_catalog",
    "get_procedure", "get_version", "import_catalog", "invalidate_calendar", "known_roles", "known_units", "list_procedures",
    "load_calendar", "load_processes", "procedures_accepting", "publish_version", "retire_version",
    "set_calendar_day", "submit_version", "update_legal_document", "version_in_force", "calendar_change_preview",
    "transfer_cutoff", "same_day_cutoff",
]
