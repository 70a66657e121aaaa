using System.Collections.Concurrent;

namespace ClipSharp.Data.Readers;

/// <summary>An item left out of a dataset, and why (missing file, undecodable image, sample without image or label…).</summary>
/// <param name="Id">The sample's identifier (path, or "shard.tar:key").</param>
/// <param name="Reason">What was wrong, in plain words.</param>
public sealed record SkippedItem(string Id, string Reason);

/// <summary>A thread-safe list of skipped items, kept in the order they were reported.</summary>
public sealed class SkipLog
{
    readonly ConcurrentQueue<SkippedItem> _items = new();

    /// <summary>Records a skipped item.</summary>
    public void Add(string id, string reason) => _items.Enqueue(new SkippedItem(id, reason));

    /// <summary>Everything recorded so far.</summary>
    public IReadOnlyList<SkippedItem> Items => _items.ToArray();

    /// <summary>Number of items recorded so far.</summary>
    public int Count => _items.Count;
}

/// <summary>A source of image–caption pairs, enumerated in a deterministic order.</summary>
public interface IImageTextDataset
{
    /// <summary>Human-readable description of where the data comes from.</summary>
    string Source { get; }

    /// <summary>The samples; enumerating twice yields the same samples in the same order.</summary>
    IEnumerable<ImageTextSample> Pairs();

    /// <summary>Samples the reader had to leave out (filled while enumerating).</summary>
    SkipLog Skipped { get; }
}

/// <summary>A source of labelled images, enumerated in a deterministic order.</summary>
public interface ILabeledImageDataset
{
    /// <summary>Human-readable description of where the data comes from.</summary>
    string Source { get; }

    /// <summary>Class names; <see cref="LabeledImage.Label"/> indexes this list.</summary>
    IReadOnlyList<string> ClassNames { get; }

    /// <summary>The images; enumerating twice yields the same images in the same order.</summary>
    IEnumerable<LabeledImage> Images();

    /// <summary>Samples the reader had to leave out (filled while enumerating).</summary>
    SkipLog Skipped { get; }
}

/// <summary>Helpers shared by the readers.</summary>
public static class DatasetFiles
{
    /// <summary>File extensions (lower case, with dot) treated as images.</summary>
    public static IReadOnlySet<string> ImageExtensions { get; } =
        new HashSet<string>(StringComparer.OrdinalIgnoreCase) { ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff" };

    /// <summary>True when the file name has an image extension.</summary>
    public static bool IsImageFile(string path) => ImageExtensions.Contains(Path.GetExtension(path));

    /// <summary>All image files under a directory (recursively), sorted by relative path with ordinal comparison.</summary>
    public static IReadOnlyList<string> ListImages(string directory, bool recursive = true)
    {
        if (!Directory.Exists(directory)) throw new DirectoryNotFoundException($"image folder not found: {directory}");
        return Directory.EnumerateFiles(directory, "*", recursive ? SearchOption.AllDirectories : SearchOption.TopDirectoryOnly)
            .Where(IsImageFile)
            .OrderBy(p => Path.GetRelativePath(directory, p).Replace('\\', '/'), StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>Opens labelled data by the shape of its path: a directory of class folders (ImageFolder), a .csv/.tsv
    /// table, or WebDataset shards (.tar files, a brace pattern such as <c>shard-{000..009}.tar</c>, or a directory of .tar files).</summary>
    /// <param name="path">The dataset path.</param>
    /// <param name="columns">Column names and class names for tables and shards.</param>
    public static ILabeledImageDataset OpenLabeled(string path, TableColumns? columns = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        columns ??= new TableColumns();
        return Kind(path) switch
        {
            "folder" => new ImageFolderDataset(path, columns.ClassNames),
            "table" => new CsvDataset(path, columns),
            _ => new WebDatasetReader(path, columns.ClassNames),
        };
    }

    /// <summary>Opens image–caption data by the shape of its path (see <see cref="OpenLabeled"/>); an ImageFolder gives
    /// each image its class name as the caption.</summary>
    public static IImageTextDataset OpenPairs(string path, TableColumns? columns = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        columns ??= new TableColumns();
        return Kind(path) switch
        {
            "folder" => new ImageFolderDataset(path, columns.ClassNames),
            "table" => new CsvDataset(path, columns),
            _ => new WebDatasetReader(path, columns.ClassNames),
        };
    }

    static string Kind(string path)
    {
        if (Directory.Exists(path)) return Directory.EnumerateFiles(path, "*.tar").Any() && !Directory.EnumerateDirectories(path).Any() ? "tar" : "folder";
        var ext = Path.GetExtension(path).ToLowerInvariant();
        return ext is ".csv" or ".tsv" ? "table" : "tar";
    }
}
