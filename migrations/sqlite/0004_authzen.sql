CREATE TABLE `search_snapshots` (
	`store_id` text NOT NULL,
	`id` text NOT NULL,
	`query_hash` text NOT NULL,
	`model_id` text NOT NULL,
	`revision` integer NOT NULL,
	`secret` text NOT NULL,
	`results` text NOT NULL,
	`total` integer NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	PRIMARY KEY(`store_id`, `id`)
);
--> statement-breakpoint
CREATE INDEX `search_snapshots_by_expiry` ON `search_snapshots` (`expires_at`);--> statement-breakpoint
CREATE INDEX `search_snapshots_by_query` ON `search_snapshots` (`store_id`,`query_hash`);--> statement-breakpoint
CREATE TABLE `signing_keys` (
	`kid` text PRIMARY KEY NOT NULL,
	`alg` text NOT NULL,
	`private_jwk` text NOT NULL,
	`public_jwk` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
ALTER TABLE `access_requests` ADD `idempotency_key` text;--> statement-breakpoint
ALTER TABLE `access_requests` ADD `request_hash` text;--> statement-breakpoint
ALTER TABLE `access_requests` ADD `binding_jti` text;--> statement-breakpoint
ALTER TABLE `access_requests` ADD `submission` text;--> statement-breakpoint
CREATE UNIQUE INDEX `access_requests_by_idempotency_key` ON `access_requests` (`store_id`,`idempotency_key`) WHERE "access_requests"."idempotency_key" IS NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX `access_requests_by_binding_jti` ON `access_requests` (`store_id`,`binding_jti`) WHERE "access_requests"."binding_jti" IS NOT NULL;