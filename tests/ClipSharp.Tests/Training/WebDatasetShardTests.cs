using System.Formats.Tar;
using System.Text;
using ClipSharp.Training;
using ClipSharp.Training.Data;

namespace ClipSharp.Tests.Training;

/// <summary>WebDataset training shards are indexed, not loaded, and feed any number of decode workers.</summary>
public class WebDatasetShardTests : IDisposable
{
    readonly string root = Directory.CreateTempSubdirectory("clipsharp-wds-").FullName;

    public void Dispose() { try { Directory.Delete(root, true); } catch (IOException) { } }

    /// <summary>Writes <paramref name="shards"/> shards with the synthetic shapes dealt round-robin; returns the directory.</summary>
    string WriteShards(int shards, bool damageLast = false)
    {
        string dir = Path.Combine(root, $"s{shards}");
        Directory.CreateDirectory(dir);
        for (int s = 0; s < shards; s++)
        {
            string path = Path.Combine(dir, $"shard-{s:D4}.tar");
            using (var f = File.Create(path))
            using (var w = new TarWriter(f, TarEntryFormat.Pax))
            {
                for (int i = s; i < SyntheticShapes.Count; i += shards)
                {
                    void Add(string name, byte[] data) => w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(data) });
                    // Captions before or after the image, as .txt or .json: both orders occur in real shards.
                    if (i % 2 == 0) Add($"{i:D6}.txt", Encoding.UTF8.GetBytes(SyntheticShapes.Caption(i)));
                    Add($"{i:D6}.png", SyntheticShapes.Png(i));
                    if (i % 2 == 1) Add($"{i:D6}.json", Encoding.UTF8.GetBytes($"{{\"caption\": \"{SyntheticShapes.Caption(i)}\"}}"));
                }
            }
            if (damageLast && s == shards - 1)
                using (var f = new FileStream(path, FileMode.Open)) f.SetLength(f.Length / 2);
        }
        return dir;
    }

    [Theory]
    [InlineData(1, 4)]   // fewer shards than workers
    [InlineData(3, 2)]
    public async Task ShardsAreIndexedAndDecodedByAllWorkersWithoutHanging(int shards, int workers)
    {
        var source = PairSource.Open(new SourceSection { Type = SourceKind.Webdataset, Path = WriteShards(shards) }, root);
        Assert.Equal(SyntheticShapes.Count, source.Samples.Count);
        Assert.All(source.Samples, s => { Assert.Null(s.ImageBytes); Assert.Null(s.ImagePath); });
        Assert.Contains(source.Samples, s => s.Captions[0] == SyntheticShapes.Caption(1)); // from .json
        var opts = new LoaderOptions { BatchSize = 8, ImageSize = 32, Workers = workers, Prefetch = 2, Seed = 1, VocabSize = 1000 };
        using var loader = new TrainingDataLoader([source], OverfitTests.Tokenizer, opts);
        var run = Task.Run(() =>
        {
            for (int i = 0; i < 2 * SyntheticShapes.Count / 8; i++)
            {
                var b = loader.Next();
                Assert.Equal(8, b.Count);
                Assert.Equal(0, b.Skipped);
            }
        });
        // Only a hang ends the wait (TimeoutException): the work takes well under a second, whatever else the machine does.
        await run.WaitAsync(TimeSpan.FromMinutes(10));
    }

    [Fact]
    public void ADamagedShardKeepsItsSamplesBeforeTheDamage()
    {
        var source = WebDatasetShards.Open(WriteShards(2, damageLast: true));
        Assert.InRange(source.Samples.Count, SyntheticShapes.Count / 2 + 1, SyntheticShapes.Count - 1);
        Assert.True(source.SkippedWhenOpening >= 1);
    }
}
