"""Creates, on a fresh moto S3 server started with INITIAL_NO_AUTH_ACTION_COUNT=4, an
IAM user allowed s3:*, its access key, and the test bucket; prints the key id and
secret. The server checks request signatures from the fifth action on, so every test
request after this is signed with these credentials and a wrong secret is refused."""
import json
import sys

import boto3

endpoint, bucket = sys.argv[1], sys.argv[2]
kw = dict(endpoint_url=endpoint, region_name="us-east-1",
          aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam = boto3.client("iam", **kw)
iam.create_user(UserName="strongroom")
iam.put_user_policy(UserName="strongroom", PolicyName="s3", PolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}))
key = iam.create_access_key(UserName="strongroom")["AccessKey"]
boto3.client("s3", **kw).create_bucket(Bucket=bucket)
print(key["AccessKeyId"], key["SecretAccessKey"])
