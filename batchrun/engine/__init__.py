"""Running a plan: one task group creates, polls and downloads; one collector records it all."""
