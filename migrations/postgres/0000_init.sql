CREATE TABLE "assertions" (
	"store_id" text COLLATE "C" NOT NULL,
	"model_id" text COLLATE "C" NOT NULL,
	"assertions" text COLLATE "C" NOT NULL,
	CONSTRAINT "assertions_store_id_model_id_pk" PRIMARY KEY("store_id","model_id")
);
--> statement-breakpoint
CREATE TABLE "authorization_models" (
	"store_id" text COLLATE "C" NOT NULL,
	"id" text COLLATE "C" NOT NULL,
	"schema_version" text COLLATE "C" NOT NULL,
	"model" text COLLATE "C" NOT NULL,
	"created_at" bigint NOT NULL,
	CONSTRAINT "authorization_models_store_id_id_pk" PRIMARY KEY("store_id","id")
);
--> statement-breakpoint
CREATE TABLE "changelog" (
	"store_id" text COLLATE "C" NOT NULL,
	"revision" bigint NOT NULL,
	"seq" integer NOT NULL,
	"object_type" text COLLATE "C" NOT NULL,
	"object_id" text COLLATE "C" NOT NULL,
	"relation" text COLLATE "C" NOT NULL,
	"user" text COLLATE "C" NOT NULL,
	"condition_name" text COLLATE "C" DEFAULT '' NOT NULL,
	"condition_context" text COLLATE "C",
	"operation" integer NOT NULL,
	"created_at" bigint NOT NULL,
	CONSTRAINT "changelog_store_id_revision_seq_pk" PRIMARY KEY("store_id","revision","seq")
);
--> statement-breakpoint
CREATE TABLE "stores" (
	"id" text COLLATE "C" PRIMARY KEY NOT NULL,
	"name" text COLLATE "C" NOT NULL,
	"created_at" bigint NOT NULL,
	"updated_at" bigint NOT NULL,
	"deleted_at" bigint,
	"revision" bigint DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "tuples" (
	"store_id" text COLLATE "C" NOT NULL,
	"object_type" text COLLATE "C" NOT NULL,
	"object_id" text COLLATE "C" NOT NULL,
	"relation" text COLLATE "C" NOT NULL,
	"user_relation" text COLLATE "C" DEFAULT '' NOT NULL,
	"user_type" text COLLATE "C" NOT NULL,
	"user_id" text COLLATE "C" NOT NULL,
	"condition_name" text COLLATE "C" DEFAULT '' NOT NULL,
	"condition_context" text COLLATE "C",
	"revision" bigint NOT NULL,
	"inserted_at" bigint NOT NULL,
	CONSTRAINT "tuples_pkey" PRIMARY KEY("store_id","object_type","object_id","relation","user_relation","user_type","user_id")
);
--> statement-breakpoint
CREATE INDEX "changelog_by_type" ON "changelog" USING btree ("store_id","object_type","revision","seq");--> statement-breakpoint
CREATE INDEX "changelog_by_time" ON "changelog" USING btree ("store_id","created_at");--> statement-breakpoint
CREATE INDEX "tuples_by_user" ON "tuples" USING btree ("store_id","object_type","relation","user_type","user_relation","user_id","object_id");