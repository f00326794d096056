"""Who the guild's automations send as: a schedule's and a trigger's messages carry these sender ids, by which
the runs and threads they start are owned by the automation's creator. No spec agent may take such an id."""

SCHEDULE_SENDER_PREFIX = "schedule-"
TRIGGER_SENDER_PREFIX = "trigger-"
