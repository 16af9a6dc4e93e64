DROP INDEX `decision_log_by_subject`;--> statement-breakpoint
DROP INDEX `decision_log_by_object`;--> statement-breakpoint
DROP INDEX `decision_log_by_time`;