namespace ClipSharp.Data;

/// <summary>One image–caption pair as read from a dataset (a file path, or an in-memory member of a tar shard).</summary>
/// <param name="Id">Stable identifier for reports and error messages (file path, or "shard.tar:key").</param>
/// <param name="Captions">One or more captions; training samples one of them, retrieval evaluates all.</param>
/// <param name="ImagePath">Path of the image file, or null when <paramref name="ImageBytes"/> holds the encoded image.</param>
/// <param name="ImageBytes">The encoded image when it does not live in its own file (e.g. WebDataset shards).</param>
public sealed record ImageTextSample(string Id, IReadOnlyList<string> Captions, string? ImagePath = null, byte[]? ImageBytes = null);

/// <summary>One labelled image for classification and evaluation.</summary>
/// <param name="Id">Stable identifier (file path, or "shard.tar:key").</param>
/// <param name="Label">Class index into the dataset's class names.</param>
/// <param name="ImagePath">Path of the image file, or null when <paramref name="ImageBytes"/> is set.</param>
/// <param name="ImageBytes">The encoded image when it does not live in its own file.</param>
public sealed record LabeledImage(string Id, int Label, string? ImagePath = null, byte[]? ImageBytes = null);
