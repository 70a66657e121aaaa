using System.CommandLine;
using ClipSharp.Checkpoints;
using ClipSharp.Imaging;

namespace ClipSharp.Cli.Commands;

/// <summary><c>clip preprocess --size N IMAGE… --output F.safetensors</c>.</summary>
internal static class PreprocessCommand
{
    public static Command Create()
    {
        var images = new Argument<string[]>("images") { Description = "Image files (JPEG, PNG, WebP, GIF, BMP)", Arity = ArgumentArity.OneOrMore };
        var size = new Option<int>("--size") { Description = "Output side in pixels", DefaultValueFactory = _ => 224 };
        var output = new Option<string>("--output", "-o") { Description = "safetensors file: one float32 [3,N,N] tensor per image, named by file name", Required = true };
        var cmd = new Command("preprocess", "Resize, crop and normalise images exactly as the reference preprocessing") { images, size, output };
        cmd.SetAction(r =>
        {
            var files = r.GetValue(images)!;
            Common.RequireFiles(files);
            int n = r.GetValue(size);
            if (n < 1) throw new CliException("--size must be positive");
            var pre = new ClipImagePreprocessor(n);
            using var sd = new StateDict();
            foreach (var f in files)
            {
                var name = Path.GetFileName(f);
                if (sd.ContainsKey(name)) throw new CliException($"two images are named {name}; tensor names must be unique");
                sd.Add(name, ClipImagePreprocessor.ToTensor(pre.Process(f), n));
            }
            SafeTensors.Save(r.GetValue(output)!, sd, new Dictionary<string, string> { ["size"] = n.ToString() });
            Console.Error.WriteLine($"wrote {files.Length} tensors [3,{n},{n}] to {r.GetValue(output)}");
            return 0;
        });
        return cmd;
    }
}
