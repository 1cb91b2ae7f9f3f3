"""Reading: report counters kept by every change, service-quality metrics, and the read models
(inbox, dossier view, control slip, register, public look-up) that screens and the API show."""
