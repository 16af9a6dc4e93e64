CREATE TABLE "search_snapshots" (
	"store_id" text COLLATE "C" NOT NULL,
	"id" text COLLATE "C" NOT NULL,
	"query_hash" text COLLATE "C" NOT NULL,
	"model_id" text COLLATE "C" NOT NULL,
	"revision" bigint NOT NULL,
	"secret" text COLLATE "C" NOT NULL,
	"results" text COLLATE "C" NOT NULL,
	"total" integer NOT NULL,
	"created_at" bigint NOT NULL,
	"expires_at" bigint NOT NULL,
	CONSTRAINT "search_snapshots_store_id_id_pk" PRIMARY KEY("store_id","id")
);
--> statement-breakpoint
CREATE TABLE "signing_keys" (
	"kid" text COLLATE "C" PRIMARY KEY NOT NULL,
	"alg" text COLLATE "C" NOT NULL,
	"private_jwk" text COLLATE "C" NOT NULL,
	"public_jwk" text COLLATE "C" NOT NULL,
	"created_at" bigint NOT NULL
);
--> statement-breakpoint
ALTER TABLE "access_requests" ADD COLUMN "idempotency_key" text COLLATE "C";--> statement-breakpoint
ALTER TABLE "access_requests" ADD COLUMN "request_hash" text COLLATE "C";--> statement-breakpoint
ALTER TABLE "access_requests" ADD COLUMN "binding_jti" text COLLATE "C";--> statement-breakpoint
ALTER TABLE "access_requests" ADD COLUMN "submission" text COLLATE "C";--> statement-breakpoint
CREATE INDEX "search_snapshots_by_expiry" ON "search_snapshots" USING btree ("expires_at");--> statement-breakpoint
CREATE INDEX "search_snapshots_by_query" ON "search_snapshots" USING btree ("store_id","query_hash");--> statement-breakpoint
CREATE UNIQUE INDEX "access_requests_by_idempotency_key" ON "access_requests" USING btree ("store_id","idempotency_key") WHERE "access_requests"."idempotency_key" IS NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "access_requests_by_binding_jti" ON "access_requests" USING btree ("store_id","binding_jti") WHERE "access_requests"."binding_jti" IS NOT NULL;