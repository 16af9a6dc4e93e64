CREATE TABLE `decision_log` (
	`store_id` text NOT NULL,
	`id` text NOT NULL,
	`at` integer NOT NULL,
	`kind` text NOT NULL,
	`model_id` text NOT NULL,
	`client` text DEFAULT '' NOT NULL,
	`subject` text NOT NULL,
	`on_behalf_of` text,
	`relation` text NOT NULL,
	`object` text NOT NULL,
	`allowed` integer NOT NULL,
	`witness` text,
	`latency_us` integer NOT NULL,
	`consistency` text DEFAULT '' NOT NULL,
	`request_id` text DEFAULT '' NOT NULL,
	`detail` text,
	PRIMARY KEY(`store_id`, `id`)
);
--> statement-breakpoint
CREATE INDEX `decision_log_by_subject` ON `decision_log` (`store_id`,`subject`,`id`);--> statement-breakpoint
CREATE INDEX `decision_log_by_object` ON `decision_log` (`store_id`,`object`,`id`);--> statement-breakpoint
CREATE INDEX `decision_log_by_time` ON `decision_log` (`at`);--> statement-breakpoint
CREATE TABLE `decision_log_settings` (
	`store_id` text PRIMARY KEY NOT NULL,
	`enabled` integer NOT NULL,
	`sample_rate` real NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `grant_usage` (
	`store_id` text NOT NULL,
	`object_type` text NOT NULL,
	`object_id` text NOT NULL,
	`relation` text NOT NULL,
	`user_relation` text DEFAULT '' NOT NULL,
	`user_type` text NOT NULL,
	`user_id` text NOT NULL,
	`last_used_at` integer NOT NULL,
	PRIMARY KEY(`store_id`, `object_type`, `object_id`, `relation`, `user_relation`, `user_type`, `user_id`)
);
--> statement-breakpoint
CREATE TABLE `token_issuers` (
	`store_id` text NOT NULL,
	`name` text NOT NULL,
	`issuer` text NOT NULL,
	`config` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`store_id`, `name`)
);
