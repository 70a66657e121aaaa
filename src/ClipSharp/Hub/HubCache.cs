using System.Text.RegularExpressions;

namespace ClipSharp.Hub;

/// <summary>
/// The Hugging Face hub cache on disk, as Hugging Face documents it for reimplementations (and as Python's
/// <c>huggingface_hub</c> writes it): <c>models--{org}--{name}/</c> holds <c>blobs/{etag}</c> (files named by their
/// git SHA-1 or LFS SHA-256), <c>snapshots/{commit}/{path}</c> (relative symbolic links to the blobs),
/// <c>refs/{revision}</c> (the commit a branch or tag pointed to) and <c>.no_exist/{commit}/{path}</c> (empty markers for
/// files known to be absent); <c>.locks/models--{org}--{name}/{blob}.lock</c> at the cache root guards concurrent downloads.
/// </summary>
internal sealed partial class HubCache(string root)
{
    public string Root { get; } = root;

    public static string FolderName(string repo) => "models--" + repo.Replace("/", "--", StringComparison.Ordinal);

    public string RepoDir(string repo) => Path.Combine(Root, FolderName(repo));

    public string BlobPath(string repo, string blob) => Path.Combine(RepoDir(repo), "blobs", blob);

    public string LockPath(string repo, string blob) => Path.Combine(Root, ".locks", FolderName(repo), blob + ".lock");

    public string SnapshotPath(string repo, string commit, string file) => Path.Combine(RepoDir(repo), "snapshots", commit, Native(file));

    string NoExistPath(string repo, string commit, string file) => Path.Combine(RepoDir(repo), ".no_exist", commit, Native(file));

    string RefPath(string repo, string revision) => Path.Combine(RepoDir(repo), "refs", Native(revision));

    static string Native(string repoPath) => repoPath.Replace('/', Path.DirectorySeparatorChar);

    [GeneratedRegex("^[0-9a-f]{40}$")]
    private static partial Regex CommitHash();

    [GeneratedRegex("^([0-9a-f]{40}|[0-9a-f]{64})$")]
    private static partial Regex BlobHash();

    public static bool IsCommitHash(string s) => CommitHash().IsMatch(s);

    /// <summary>True for an ETag that names a blob the way the hub's do: a git SHA-1 or an LFS SHA-256.</summary>
    public static bool IsBlobName(string s) => BlobHash().IsMatch(s);

    /// <summary>The snapshot folder name for a revision when the server named no commit: the revision itself, made one path segment.</summary>
    public static string SnapshotNameFor(string revision) => IsCommitHash(revision) ? revision : revision.Replace("/", "--", StringComparison.Ordinal);

    /// <summary>The commit a revision points to in the cache: itself if it is a commit hash, else what <c>refs/{revision}</c> holds.</summary>
    public string? CommitFor(string repo, string revision)
    {
        if (IsCommitHash(revision)) return revision;
        var refPath = RefPath(repo, revision);
        try
        {
            // Without a ref, a snapshot named after the revision itself (what a mirror without commit headers yields), as Python reads it.
            if (!File.Exists(refPath))
                return Directory.Exists(Path.Combine(RepoDir(repo), "snapshots", SnapshotNameFor(revision))) ? SnapshotNameFor(revision) : null;
            var commit = File.ReadAllText(refPath).Trim();
            return commit.Length > 0 && !commit.Contains("..", StringComparison.Ordinal) && commit.IndexOfAny(['/', '\\']) < 0 ? commit : null;
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    /// <summary>The cached file (its snapshot path) for a revision, or null; a link whose blob is gone counts as absent.</summary>
    public string? TryGetFile(string repo, string revision, string file)
    {
        if (CommitFor(repo, revision) is not { } commit) return null;
        var path = SnapshotPath(repo, commit, file);
        return File.Exists(path) ? path : null;
    }

    /// <summary>True when an earlier request found that the file does not exist at this revision.</summary>
    public bool IsKnownMissing(string repo, string revision, string file) =>
        CommitFor(repo, revision) is { } commit && File.Exists(NoExistPath(repo, commit, file));

    public void MarkMissing(string repo, string revision, string commit, string file)
    {
        var path = NoExistPath(repo, commit, file);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        if (!File.Exists(path)) File.WriteAllBytes(path, []);
        WriteRef(repo, revision, commit);
    }

    /// <summary>Records that <paramref name="revision"/> points to <paramref name="commit"/> (nothing to do when the revision is a commit hash).</summary>
    public void WriteRef(string repo, string revision, string commit)
    {
        if (IsCommitHash(revision)) return;
        var path = RefPath(repo, revision);
        if (File.Exists(path) && File.ReadAllText(path).Trim() == commit) return;
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        WriteAtomically(path, commit);
    }

    /// <summary>Points <c>snapshots/{commit}/{file}</c> at a blob with a relative link (a copy where links are unavailable) and returns its path.</summary>
    public string LinkSnapshot(string repo, string commit, string file, string blob)
    {
        var path = SnapshotPath(repo, commit, file);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        int depth = file.Count(c => c == '/');
        string target = string.Concat(Enumerable.Repeat(".." + Path.DirectorySeparatorChar, depth + 2)) + "blobs" + Path.DirectorySeparatorChar + blob;
        LinkOrCopy(path, target, BlobPath(repo, blob));
        return path;
    }

    /// <summary>Replaces <paramref name="path"/> with a symbolic link to <paramref name="target"/> (relative targets are
    /// relative to the link's folder) in one rename, or with a copy of <paramref name="targetFullPath"/> if links cannot be made.</summary>
    public static void LinkOrCopy(string path, string target, string targetFullPath)
    {
        var info = new FileInfo(path);
        if (info.LinkTarget == target && File.Exists(path)) return;
        string tmp = Path.Combine(Path.GetDirectoryName(path)!, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        try
        {
            try { File.CreateSymbolicLink(tmp, target); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
            {
                File.Copy(targetFullPath, tmp);
            }
            File.Move(tmp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp) || new FileInfo(tmp).LinkTarget is not null) File.Delete(tmp);
        }
    }

    /// <summary>Writes a small text file so readers see the old or the new content, never a mix.</summary>
    public static void WriteAtomically(string path, string text)
    {
        string tmp = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        try
        {
            File.WriteAllText(tmp, text);
            File.Move(tmp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }
}
