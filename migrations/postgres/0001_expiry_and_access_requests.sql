CREATE TABLE "access_request_events" (
	"store_id" text COLLATE "C" NOT NULL,
	"request_id" text COLLATE "C" NOT NULL,
	"seq" integer NOT NULL,
	"type" text COLLATE "C" NOT NULL,
	"actor" text COLLATE "C" NOT NULL,
	"at" bigint NOT NULL,
	"reason" text COLLATE "C" DEFAULT '' NOT NULL,
	CONSTRAINT "access_request_events_store_id_request_id_seq_pk" PRIMARY KEY("store_id","request_id","seq")
);
--> statement-breakpoint
CREATE TABLE "access_requests" (
	"store_id" text COLLATE "C" NOT NULL,
	"id" text COLLATE "C" NOT NULL,
	"object_type" text COLLATE "C" NOT NULL,
	"object_id" text COLLATE "C" NOT NULL,
	"relation" text COLLATE "C" NOT NULL,
	"user" text COLLATE "C" NOT NULL,
	"duration_ms" bigint NOT NULL,
	"reason" text COLLATE "C" DEFAULT '' NOT NULL,
	"status" text COLLATE "C" NOT NULL,
	"created_at" bigint NOT NULL,
	"pending_until" bigint NOT NULL,
	"grant_expires_at" bigint,
	CONSTRAINT "access_requests_store_id_id_pk" PRIMARY KEY("store_id","id")
);
--> statement-breakpoint
ALTER TABLE "changelog" ADD COLUMN "expires_at" bigint;--> statement-breakpoint
ALTER TABLE "tuples" ADD COLUMN "expires_at" bigint;--> statement-breakpoint
CREATE INDEX "access_requests_by_status" ON "access_requests" USING btree ("store_id","status","id");--> statement-breakpoint
CREATE INDEX "access_requests_pending" ON "access_requests" USING btree ("pending_until") WHERE "access_requests"."status" = 'pending';--> statement-breakpoint
CREATE INDEX "tuples_by_expiry" ON "tuples" USING btree ("expires_at","store_id") WHERE "tuples"."expires_at" IS NOT NULL;