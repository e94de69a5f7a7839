"""What starts runs besides a person: schedules (:mod:`.schedule`), polls and subscriptions
(:mod:`.runner`), and the signature checks of webhooks (:mod:`.signatures`)."""
