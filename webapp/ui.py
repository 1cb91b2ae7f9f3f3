"""The staff and citizen screens: server-rendered, working without JavaScript, Vietnamese throughout.
One blueprint (`ui`), its routes grouped by what the user does."""
from . import assign, citizen, dossier, lists, login, reception, tasks  # noqa: F401  (register their routes on bp)
from .common import bp, error_text, staff_required  # noqa: F401
