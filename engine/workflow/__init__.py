"""Process execution: the SpiffWorkflow runtime wrapper (the only code that imports SpiffWorkflow),
safe expression evaluation, BPMN parsing and validation, working-time arithmetic. No database."""
