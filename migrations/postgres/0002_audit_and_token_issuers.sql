CREATE TABLE "decision_log" (
	"store_id" text COLLATE "C" NOT NULL,
	"id" text COLLATE "C" NOT NULL,
	"at" bigint NOT NULL,
	"kind" text COLLATE "C" NOT NULL,
	"model_id" text COLLATE "C" NOT NULL,
	"client" text COLLATE "C" DEFAULT '' NOT NULL,
	"subject" text COLLATE "C" NOT NULL,
	"on_behalf_of" text COLLATE "C",
	"relation" text COLLATE "C" NOT NULL,
	"object" text COLLATE "C" NOT NULL,
	"allowed" integer NOT NULL,
	"witness" text COLLATE "C",
	"latency_us" bigint NOT NULL,
	"consistency" text COLLATE "C" DEFAULT '' NOT NULL,
	"request_id" text COLLATE "C" DEFAULT '' NOT NULL,
	"detail" text COLLATE "C",
	CONSTRAINT "decision_log_store_id_id_pk" PRIMARY KEY("store_id","id")
);
--> statement-breakpoint
CREATE TABLE "decision_log_settings" (
	"store_id" text COLLATE "C" PRIMARY KEY NOT NULL,
	"enabled" integer NOT NULL,
	"sample_rate" double precision NOT NULL,
	"updated_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "grant_usage" (
	"store_id" text COLLATE "C" NOT NULL,
	"object_type" text COLLATE "C" NOT NULL,
	"object_id" text COLLATE "C" NOT NULL,
	"relation" text COLLATE "C" NOT NULL,
	"user_relation" text COLLATE "C" DEFAULT '' NOT NULL,
	"user_type" text COLLATE "C" NOT NULL,
	"user_id" text COLLATE "C" NOT NULL,
	"last_used_at" bigint NOT NULL,
	CONSTRAINT "grant_usage_store_id_object_type_object_id_relation_user_relation_user_type_user_id_pk" PRIMARY KEY("store_id","object_type","object_id","relation","user_relation","user_type","user_id")
);
--> statement-breakpoint
CREATE TABLE "token_issuers" (
	"store_id" text COLLATE "C" NOT NULL,
	"name" text COLLATE "C" NOT NULL,
	"issuer" text COLLATE "C" NOT NULL,
	"config" text COLLATE "C" NOT NULL,
	"created_at" bigint NOT NULL,
	"updated_at" bigint NOT NULL,
	CONSTRAINT "token_issuers_store_id_name_pk" PRIMARY KEY("store_id","name")
);
--> statement-breakpoint
CREATE INDEX "decision_log_by_subject" ON "decision_log" USING btree ("store_id","subject","id");--> statement-breakpoint
CREATE INDEX "decision_log_by_object" ON "decision_log" USING btree ("store_id","object","id");--> statement-breakpoint
CREATE INDEX "decision_log_by_time" ON "decision_log" USING btree ("at");