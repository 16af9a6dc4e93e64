CREATE TABLE `assertions` (
	`store_id` text NOT NULL,
	`model_id` text NOT NULL,
	`assertions` text NOT NULL,
	PRIMARY KEY(`store_id`, `model_id`)
);
--> statement-breakpoint
CREATE TABLE `authorization_models` (
	`store_id` text NOT NULL,
	`id` text NOT NULL,
	`schema_version` text NOT NULL,
	`model` text NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`store_id`, `id`)
);
--> statement-breakpoint
CREATE TABLE `changelog` (
	`store_id` text NOT NULL,
	`revision` integer NOT NULL,
	`seq` integer NOT NULL,
	`object_type` text NOT NULL,
	`object_id` text NOT NULL,
	`relation` text NOT NULL,
	`user` text NOT NULL,
	`condition_name` text DEFAULT '' NOT NULL,
	`condition_context` text,
	`operation` integer NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`store_id`, `revision`, `seq`)
);
--> statement-breakpoint
CREATE INDEX `changelog_by_type` ON `changelog` (`store_id`,`object_type`,`revision`,`seq`);--> statement-breakpoint
CREATE INDEX `changelog_by_time` ON `changelog` (`store_id`,`created_at`);--> statement-breakpoint
CREATE TABLE `stores` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`deleted_at` integer,
	`revision` integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE `tuples` (
	`store_id` text NOT NULL,
	`object_type` text NOT NULL,
	`object_id` text NOT NULL,
	`relation` text NOT NULL,
	`user_relation` text DEFAULT '' NOT NULL,
	`user_type` text NOT NULL,
	`user_id` text NOT NULL,
	`condition_name` text DEFAULT '' NOT NULL,
	`condition_context` text,
	`revision` integer NOT NULL,
	`inserted_at` integer NOT NULL,
	PRIMARY KEY(`store_id`, `object_type`, `object_id`, `relation`, `user_relation`, `user_type`, `user_id`)
);
--> statement-breakpoint
CREATE INDEX `tuples_by_user` ON `tuples` (`store_id`,`object_type`,`relation`,`user_type`,`user_relation`,`user_id`,`object_id`);