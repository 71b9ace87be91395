//! Which topic configs a tenant may set (SPEC §7), checked on CreateTopics and
//! (Incremental)AlterConfigs before anything reaches the pool.
