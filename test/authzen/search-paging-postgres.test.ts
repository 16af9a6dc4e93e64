/**
 * AuthZEN search paging on PostgreSQL: the cases of search-paging.case.test.ts, with a second
 * replica (its own pool) paging a search the first began. Skipped (with the reason printed)
 * when PEMBA_TEST_POSTGRES_URL is unset or unreachable; failed instead when
 * PEMBA_REQUIRE_POSTGRES=1, as CI sets (.ci/run).
 */
import { describePostgres, probePostgres, usePostgresSchema } from '../helpers/postgres.ts'
import { searchPagingCases } from './search-paging.case.test.ts'

const target = await probePostgres()

describePostgres('AuthZEN search paging (PostgreSQL)', target, () => {
  const url = usePostgresSchema(target)
  searchPagingCases(() => ({ databaseUrl: url() }), true)
})
