namespace ClipSharp.Server;

/// <summary>
/// The rules that keep a request inside the indexed folders: a requested path must be a plain relative path (no
/// <c>..</c>, <c>.</c> or empty segments, not rooted, no backslash or NUL), must name an indexed file, and the file's
/// real location, with every symbolic link on the way resolved, must lie inside the index's real folder.
/// </summary>
internal static class ContainedPath
{
    /// <summary>The requested path when it is a plain relative path with '/' separators, else null.</summary>
    public static string? Plain(string? requested)
    {
        if (string.IsNullOrEmpty(requested) || requested.Length > 4096) return null;
        if (requested.Contains('\0') || requested.Contains('\\')) return null;
        if (requested.StartsWith('/') || Path.IsPathRooted(requested) || (requested.Length >= 2 && requested[1] == ':')) return null;
        foreach (var segment in requested.Split('/'))
            if (segment is "" or "." or "..") return null;
        return requested;
    }

    /// <summary>The key of an indexed file: its path relative to the index folder with '/' separators, or null when it lies outside.</summary>
    public static string? Key(string folder, string file)
    {
        var rel = Path.GetRelativePath(folder, file);
        if (Path.IsPathRooted(rel) || rel == ".." || rel.StartsWith(".." + Path.DirectorySeparatorChar, StringComparison.Ordinal)) return null;
        return Plain(rel.Replace(Path.DirectorySeparatorChar, '/'));
    }

    /// <summary>True when <paramref name="path"/> is <paramref name="folder"/> itself or below it (both absolute, resolved).</summary>
    public static bool IsInside(string path, string folder)
    {
        var f = folder.EndsWith(Path.DirectorySeparatorChar) ? folder : folder + Path.DirectorySeparatorChar;
        return path.StartsWith(f, StringComparison.Ordinal);
    }

    /// <summary>
    /// The path with every symbolic link resolved, as POSIX <c>realpath</c> does: a link's target replaces it and is
    /// walked in turn, and <c>..</c> after a link steps out of the link's target, not out of the link's folder.
    /// Components that do not exist are kept as they are.
    /// </summary>
    /// <exception cref="IOException">More than 40 links on the way (a loop).</exception>
    public static string RealPath(string path)
    {
        // Not Path.GetFullPath: it removes ".." lexically, which is wrong after a link.
        var full = Path.IsPathRooted(path) ? path : Path.Combine(Environment.CurrentDirectory, path);
        var root = Path.GetPathRoot(full)!;
        var pending = new List<string>(Split(full[root.Length..]));
        pending.Reverse(); // a stack: the next component is at the end
        string current = root;
        int links = 0;
        while (pending.Count > 0)
        {
            var part = pending[^1];
            pending.RemoveAt(pending.Count - 1);
            if (part == ".") continue;
            if (part == "..") { current = Path.GetDirectoryName(current) ?? root; continue; }
            var next = Path.Combine(current, part);
            string? target = null;
            try { target = new FileInfo(next).LinkTarget; }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            if (target is null) { current = next; continue; }
            if (++links > 40) throw new IOException($"too many levels of symbolic links: {path}");
            if (Path.IsPathRooted(target)) current = Path.GetPathRoot(target)!;
            var parts = Split(Path.IsPathRooted(target) ? target[Path.GetPathRoot(target)!.Length..] : target);
            for (int i = parts.Length - 1; i >= 0; i--) pending.Add(parts[i]);
        }
        return current;
    }

    static string[] Split(string p) =>
        p.Split([Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar], StringSplitOptions.RemoveEmptyEntries);
}
