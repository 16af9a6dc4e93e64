CREATE TABLE `access_request_events` (
	`store_id` text NOT NULL,
	`request_id` text NOT NULL,
	`seq` integer NOT NULL,
	`type` text NOT NULL,
	`actor` text NOT NULL,
	`at` integer NOT NULL,
	`reason` text DEFAULT '' NOT NULL,
	PRIMARY KEY(`store_id`, `request_id`, `seq`)
);
--> statement-breakpoint
CREATE TABLE `access_requests` (
	`store_id` text NOT NULL,
	`id` text NOT NULL,
	`object_type` text NOT NULL,
	`object_id` text NOT NULL,
	`relation` text NOT NULL,
	`user` text NOT NULL,
	`duration_ms` integer NOT NULL,
	`reason` text DEFAULT '' NOT NULL,
	`status` text NOT NULL,
	`created_at` integer NOT NULL,
	`pending_until` integer NOT NULL,
	`grant_expires_at` integer,
	PRIMARY KEY(`store_id`, `id`)
);
--> statement-breakpoint
CREATE INDEX `access_requests_by_status` ON `access_requests` (`store_id`,`status`,`id`);--> statement-breakpoint
CREATE INDEX `access_requests_pending` ON `access_requests` (`pending_until`) WHERE "access_requests"."status" = 'pending';--> statement-breakpoint
ALTER TABLE `changelog` ADD `expires_at` integer;--> statement-breakpoint
ALTER TABLE `tuples` ADD `expires_at` integer;--> statement-breakpoint
CREATE INDEX `tuples_by_expiry` ON `tuples` (`expires_at`,`store_id`) WHERE "tuples"."expires_at" IS NOT NULL;