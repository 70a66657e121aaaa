using ClipSharp.Data;
using ClipSharp.Data.Readers;

namespace ClipSharp.Training.Data;

/// <summary>One indexed set of image–caption pairs and its mixing weight.</summary>
/// <param name="Name">Name for logs (usually the path).</param>
/// <param name="Samples">The pairs, in a fixed order.</param>
/// <param name="Weight">Relative sampling weight.</param>
public sealed record PairSource(string Name, IReadOnlyList<ImageTextSample> Samples, double Weight = 1.0)
{
    /// <summary>Rows the reader left out when opening (missing files, rows without image or caption).</summary>
    public int SkippedWhenOpening { get; init; }

    /// <summary>Reads a sample's encoded image when it is neither a file nor in memory (WebDataset shards: from the
    /// shard on demand). Null: use <see cref="ImageTextSample.ImagePath"/> or <see cref="ImageTextSample.ImageBytes"/>.</summary>
    public Func<ImageTextSample, byte[]>? ReadImage { get; init; }

    /// <summary>Opens a configured source. Relative paths resolve against <paramref name="baseDirectory"/>.</summary>
    public static PairSource Open(SourceSection section, string baseDirectory)
    {
        string path = Path.IsPathRooted(section.Path) ? section.Path : Path.GetFullPath(Path.Combine(baseDirectory, section.Path));
        // Shards are indexed, not loaded: images are read from them by the decode workers (WebDatasetShards).
        if (section.Type == SourceKind.Webdataset) return WebDatasetShards.Open(path, section.Weight);
        IImageTextDataset dataset = section.Type switch
        {
            SourceKind.Csv => new CsvDataset(path, new TableColumns { ImageColumn = section.ImageColumn, CaptionColumn = section.CaptionColumn, Delimiter = ',' }),
            SourceKind.Tsv => new CsvDataset(path, new TableColumns { ImageColumn = section.ImageColumn, CaptionColumn = section.CaptionColumn, Delimiter = '\t' }),
            SourceKind.ImageFolder => new ImageFolderDataset(path),
            _ => new WebDatasetReader(path),
        };
        var samples = dataset.Pairs().ToList();
        if (section.Type == SourceKind.ImageFolder)
        {
            var templates = section.Templates ?? ["a photo of a {}."];
            samples = samples.Select(s => s with { Captions = templates.Select(t => ZeroShot.PromptSets.Fill(t, s.Captions[0])).ToList() }).ToList();
        }
        if (samples.Count == 0) throw new ClipSharpException($"{path}: no image–caption pairs");
        return new PairSource(path, samples, section.Weight) { SkippedWhenOpening = dataset.Skipped.Count };
    }
}

