//! The conformance suite every backend must pass. Tests of each backend call [`run`]; it
//! returns the first broken promise as an error naming the check, so a failure says what
//! the backend got wrong. `prefix` isolates a run on a shared bucket.

use bytes::Bytes;

use crate::{
    Appended, DocId, DocStore, Key, PutCondition, Snapshot, StateEncoding, Store, StoreError,
    WriterId,
};

fn key(prefix: &str, rest: &str) -> Result<Key, String> {
    Key::new(format!("{prefix}/{rest}")).map_err(|e| e.to_string())
}

fn check(ok: bool, what: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what.to_owned()) }
}

fn ctx<T>(r: Result<T, StoreError>, what: &str) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {e}"))
}

/// Runs every check against `store` under `prefix` (a valid key segment).
pub async fn run(store: &Store, prefix: &str) -> Result<(), String> {
    basic_round_trip(store, prefix).await?;
    conditional_writes(store, prefix).await?;
    listing(store, prefix).await?;
    racing_if_absent(store, prefix).await?;
    racing_if_match(store, prefix).await?;
    large_object(store, prefix).await?;
    batch_delete(store, prefix).await?;
    document_layout(store, prefix).await?;
    fenced_append(store, prefix).await?;
    Ok(())
}

async fn basic_round_trip(store: &Store, prefix: &str) -> Result<(), String> {
    let k = key(prefix, "basic/a")?;
    check(
        ctx(store.get(&k).await, "get missing")?.is_none(),
        "get of a missing key returned data",
    )?;
    let v1 = ctx(
        store
            .put(&k, Bytes::from_static(b"first"), PutCondition::None)
            .await,
        "put",
    )?;
    let got = ctx(store.get(&k).await, "get")?.ok_or("object missing after put")?;
    check(
        got.data == Bytes::from_static(b"first"),
        "get returned other bytes than put",
    )?;
    check(got.version == v1, "get returned another version than put")?;
    let v2 = ctx(
        store
            .put(&k, Bytes::from_static(b"second"), PutCondition::None)
            .await,
        "overwrite",
    )?;
    check(v1 != v2, "overwrite with other bytes kept the version")?;
    let got = ctx(store.get(&k).await, "get")?.ok_or("object missing after overwrite")?;
    check(
        got.data == Bytes::from_static(b"second"),
        "overwrite not visible",
    )?;
    let empty = key(prefix, "basic/empty")?;
    ctx(
        store.put(&empty, Bytes::new(), PutCondition::None).await,
        "put empty",
    )?;
    let got = ctx(store.get(&empty).await, "get empty")?.ok_or("empty object missing")?;
    check(got.data.is_empty(), "empty object came back non-empty")?;
    ctx(store.delete(&k).await, "delete")?;
    check(
        ctx(store.get(&k).await, "get deleted")?.is_none(),
        "deleted object still readable",
    )?;
    ctx(
        store.delete(&k).await,
        "delete of a missing key must succeed",
    )?;
    ctx(store.delete(&empty).await, "delete")?;
    ctx(store.ping().await, "ping")?;
    Ok(())
}

async fn conditional_writes(store: &Store, prefix: &str) -> Result<(), String> {
    let k = key(prefix, "cond/x")?;
    let v1 = ctx(
        store
            .put(&k, Bytes::from_static(b"one"), PutCondition::IfAbsent)
            .await,
        "if-absent on a missing key",
    )?;
    let lost = store
        .put(&k, Bytes::from_static(b"two"), PutCondition::IfAbsent)
        .await;
    check(
        matches!(lost, Err(StoreError::ConditionFailed { .. })),
        "if-absent on an existing key did not fail with ConditionFailed",
    )?;
    let got = ctx(store.get(&k).await, "get")?.ok_or("object missing")?;
    check(
        got.data == Bytes::from_static(b"one"),
        "a failed if-absent changed the object",
    )?;
    let v2 = ctx(
        store
            .put(
                &k,
                Bytes::from_static(b"three"),
                PutCondition::IfMatch(v1.clone()),
            )
            .await,
        "if-match with the current version",
    )?;
    let stale = store
        .put(&k, Bytes::from_static(b"four"), PutCondition::IfMatch(v1))
        .await;
    check(
        matches!(stale, Err(StoreError::ConditionFailed { .. })),
        "if-match with a stale version did not fail",
    )?;
    let got = ctx(store.get(&k).await, "get")?.ok_or("object missing")?;
    check(
        got.data == Bytes::from_static(b"three") && got.version == v2,
        "a failed if-match changed the object",
    )?;
    let missing = key(prefix, "cond/missing")?;
    let on_missing = store
        .put(
            &missing,
            Bytes::from_static(b"x"),
            PutCondition::IfMatch(v2),
        )
        .await;
    check(
        matches!(on_missing, Err(StoreError::ConditionFailed { .. })),
        "if-match on a missing key did not fail",
    )?;
    ctx(store.delete(&k).await, "delete")?;
    Ok(())
}

async fn listing(store: &Store, prefix: &str) -> Result<(), String> {
    let names = ["list/b/2", "list/a", "list/b/1", "list/ab", "listx"];
    for n in names {
        ctx(
            store
                .put(
                    &key(prefix, n)?,
                    Bytes::from_static(b"12345"),
                    PutCondition::None,
                )
                .await,
            "put",
        )?;
    }
    let all = ctx(store.list(&format!("{prefix}/list/")).await, "list")?;
    let got: Vec<String> = all.iter().map(|e| e.key.as_str().to_owned()).collect();
    let want: Vec<String> = ["list/a", "list/ab", "list/b/1", "list/b/2"]
        .iter()
        .map(|n| format!("{prefix}/{n}"))
        .collect();
    check(
        got == want,
        &format!("list returned {got:?}, expected {want:?}"),
    )?;
    check(all.iter().all(|e| e.size == 5), "list sizes wrong")?;
    let partial = ctx(
        store.list(&format!("{prefix}/list/a")).await,
        "list partial",
    )?;
    check(
        partial.len() == 2,
        "a prefix ending inside a segment must match both list/a and list/ab",
    )?;
    let none = ctx(
        store.list(&format!("{prefix}/nothing/")).await,
        "list empty",
    )?;
    check(none.is_empty(), "list of an unused prefix returned keys")?;
    for n in names {
        ctx(store.delete(&key(prefix, n)?).await, "delete")?;
    }
    Ok(())
}

async fn racing_if_absent(store: &Store, prefix: &str) -> Result<(), String> {
    let k = key(prefix, "race/absent")?;
    let mut tasks = Vec::new();
    for i in 0..32u32 {
        let (store, k) = (store.clone(), k.clone());
        tasks.push(tokio::spawn(async move {
            let body = Bytes::from(format!("writer-{i}"));
            (i, store.put(&k, body, PutCondition::IfAbsent).await)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (i, result) = t.await.map_err(|e| e.to_string())?;
        match result {
            Ok(_) => winners.push(i),
            Err(StoreError::ConditionFailed { .. }) => {}
            Err(e) => return Err(format!("racing if-absent writer failed oddly: {e}")),
        }
    }
    check(
        winners.len() == 1,
        &format!(
            "32 racing if-absent writes: {} won, expected exactly 1",
            winners.len()
        ),
    )?;
    let got = ctx(store.get(&k).await, "get")?.ok_or("raced object missing")?;
    check(
        got.data == format!("writer-{}", winners[0]).as_bytes(),
        "stored bytes are not the winner's",
    )?;
    ctx(store.delete(&k).await, "delete")?;
    Ok(())
}

async fn racing_if_match(store: &Store, prefix: &str) -> Result<(), String> {
    let k = key(prefix, "race/match")?;
    let v = ctx(
        store
            .put(&k, Bytes::from_static(b"base"), PutCondition::None)
            .await,
        "put",
    )?;
    let mut tasks = Vec::new();
    for i in 0..16u32 {
        let (store, k, v) = (store.clone(), k.clone(), v.clone());
        tasks.push(tokio::spawn(async move {
            store
                .put(&k, Bytes::from(format!("m{i}")), PutCondition::IfMatch(v))
                .await
                .is_ok()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        if t.await.map_err(|e| e.to_string())? {
            wins += 1;
        }
    }
    check(
        wins == 1,
        &format!("16 racing if-match writes: {wins} won, expected exactly 1"),
    )?;
    ctx(store.delete(&k).await, "delete")?;
    Ok(())
}

async fn large_object(store: &Store, prefix: &str) -> Result<(), String> {
    let k = key(prefix, "large")?;
    let data: Vec<u8> = (0..8 * 1024 * 1024u32)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let data = Bytes::from(data);
    ctx(
        store.put(&k, data.clone(), PutCondition::None).await,
        "put 8 MiB",
    )?;
    let got = ctx(store.get(&k).await, "get 8 MiB")?.ok_or("large object missing")?;
    check(got.data == data, "8 MiB object came back different")?;
    ctx(store.delete(&k).await, "delete")?;
    Ok(())
}

async fn document_layout(store: &Store, prefix: &str) -> Result<(), String> {
    let docs = DocStore::new(store.clone());
    let doc: DocId = format!("{prefix}-doc")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let loaded = ctx(docs.load(&doc).await, "load of a new document")?;
    check(
        loaded.is_empty() && loaded.next_seq == 0,
        "a new document is not empty",
    )?;
    let u = |s: &'static str| Bytes::from_static(s.as_bytes());
    let me = WriterId::random();
    let stored = |a: Appended| matches!(a, Appended::Stored { .. });
    check(
        stored(ctx(
            docs.append(&doc, 0, &me, &[u("a"), u("b")]).await,
            "append 0",
        )?),
        "append 0 not stored",
    )?;
    check(
        stored(ctx(docs.append(&doc, 1, &me, &[u("c")]).await, "append 1")?),
        "append 1 not stored",
    )?;
    let dup = ctx(
        docs.append(&doc, 1, &WriterId::random(), &[u("other writer")])
            .await,
        "second writer",
    )?;
    check(
        dup == Appended::Taken,
        "a second append at one sequence number was not fenced",
    )?;
    // The same write again (a retry after a timeout that had in fact landed): ours.
    let again = ctx(docs.append(&doc, 1, &me, &[u("c")]).await, "retry")?;
    check(
        matches!(
            again,
            Appended::Stored {
                own_earlier: true,
                ..
            }
        ),
        &format!("a retry of a write that had landed was not recognised: {again:?}"),
    )?;
    let loaded = ctx(docs.load(&doc).await, "load")?;
    check(
        loaded.next_seq == 2 && loaded.entries.len() == 2,
        "log not loaded in full",
    )?;
    check(
        loaded.entries[1].updates == vec![u("c")],
        "log entry content changed",
    )?;
    let snap = Snapshot {
        generation: 1,
        log_from: 2,
        encoding: StateEncoding::YrsV1,
        state: u("merged"),
    };
    ctx(docs.write_snapshot(&doc, &snap).await, "snapshot")?;
    // Crash between snapshot and deletion: the merged entries must be skipped.
    let loaded = ctx(docs.load(&doc).await, "load after snapshot")?;
    check(
        loaded.snapshot.as_ref() == Some(&snap)
            && loaded.entries.is_empty()
            && loaded.next_seq == 2,
        "entries below the snapshot were not skipped",
    )?;
    ctx(docs.delete_merged(&doc, &snap).await, "delete merged")?;
    ctx(
        docs.append(&doc, 2, &me, &[u("d")]).await,
        "append after compaction",
    )?;
    let loaded = ctx(docs.load(&doc).await, "load after compaction")?;
    check(
        loaded.objects == 2 && loaded.entries.len() == 1 && loaded.next_seq == 3,
        "compaction left the wrong objects",
    )?;
    ctx(docs.purge(&doc).await, "purge")?;
    check(
        ctx(docs.load(&doc).await, "load purged")?.is_empty(),
        "purged document not empty",
    )?;
    Ok(())
}

async fn batch_delete(store: &Store, prefix: &str) -> Result<(), String> {
    let mut keys = Vec::new();
    for i in 0..1203u32 {
        let k = key(prefix, &format!("many/{i:05}"))?;
        if i % 3 != 0 {
            ctx(
                store
                    .put(&k, Bytes::from_static(b"x"), PutCondition::None)
                    .await,
                "put",
            )?;
        }
        keys.push(k); // every third never existed: deleting it must succeed too
    }
    let keep = key(prefix, "many-kept")?;
    ctx(
        store
            .put(&keep, Bytes::from_static(b"k"), PutCondition::None)
            .await,
        "put",
    )?;
    ctx(store.delete_many(&keys).await, "delete_many")?;
    let left = ctx(store.list(&format!("{prefix}/many/")).await, "list")?;
    check(
        left.is_empty(),
        &format!("delete_many left {} keys", left.len()),
    )?;
    check(
        ctx(store.get(&keep).await, "get")?.is_some(),
        "delete_many deleted a key it was not given",
    )?;
    ctx(store.delete(&keep).await, "delete")?;
    Ok(())
}

/// Issue 10 item 1: a writer behind another process's compaction writes a key the
/// compaction freed. The write succeeds on the store, but a snapshot fences it: it must be
/// reported as fenced, never as stored.
async fn fenced_append(store: &Store, prefix: &str) -> Result<(), String> {
    let docs = DocStore::new(store.clone());
    let doc: DocId = format!("{prefix}-fenced")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let (a, b) = (WriterId::random(), WriterId::random());
    let u = |s: &'static str| Bytes::from_static(s.as_bytes());
    for seq in 0..4 {
        ctx(docs.append(&doc, seq, &a, &[u("a")]).await, "append")?;
    }
    let snap = Snapshot {
        generation: 1,
        log_from: 4,
        encoding: StateEncoding::YrsV1,
        state: u("merged"),
    };
    ctx(docs.write_snapshot(&doc, &snap).await, "snapshot")?;
    ctx(docs.delete_merged(&doc, &snap).await, "delete merged")?;
    check(
        ctx(docs.fence(&doc).await, "fence")? == 4,
        "fence is not log_from",
    )?;
    // B loaded at seq 2 and never heard of A's writes.
    let late = ctx(docs.append(&doc, 2, &b, &[u("b")]).await, "stale append")?;
    check(
        late == Appended::Fenced { log_from: 4 },
        &format!("an append below a snapshot was reported {late:?}"),
    )?;
    let above = ctx(docs.append(&doc, 4, &b, &[u("b")]).await, "append above")?;
    check(
        matches!(above, Appended::Stored { .. }),
        "the append above the fence was not stored",
    )?;
    let loaded = ctx(docs.load(&doc).await, "load")?;
    check(
        loaded.entries.len() == 1 && loaded.next_seq == 5,
        "load after the fence is wrong",
    )?;
    ctx(docs.purge(&doc).await, "purge")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn memory_backend_conforms() {
        run(&Store::memory(), "conf").await.expect("memory backend");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn fs_backend_conforms() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::new(crate::fs::FsBackend::open(dir.path()).expect("open"));
        run(&store, "conf").await.expect("fs backend");
    }

    #[test]
    fn fs_data_dir_is_locked_against_a_second_opener() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _first = crate::fs::FsBackend::open(dir.path()).expect("open");
        let second = crate::fs::FsBackend::open(dir.path());
        assert!(matches!(second, Err(StoreError::Misconfigured(m)) if m.contains("in use")));
    }
}
